# robust_names_check.py - checks pyflame's output files for a profile of
# tests/targets/robust_names.py (used by tests/integration/test_robust_names.c;
# Python 3 only).
#
#   python3 robust_names_check.py MAXDEPTH KIND=FILE...
#
# KIND: collapsed, collapsed-n, qualnames, per-thread, flamechart, svg,
# speedscope, chrome, pprof, dump.  Every file must be well formed for its
# format whatever the names hold: collapsed lines parse (one stack per line,
# frames split on ';', the count last), no control bytes or NUL anywhere,
# text is valid UTF-8 (README: "Names are written as UTF-8"), the SVG is
# well-formed XML (xmllint --noout when installed), JSON parses strictly, the
# pprof file decompresses and is well-formed protobuf whose strings are UTF-8,
# no stack is deeper than MAXDEPTH (a ';' or newline inside a name would add
# frames or lines), and the hostile "semi;colon" function is found in one
# frame.  Prints one line per problem; exits 1 if there is any.
import gzip
import json
import re
import shutil
import subprocess
import sys

problems = []


def bad(kind, msg):
    problems.append("%s: %s" % (kind, msg))


def show(b, n=120):
    return repr(b[:n])


def no_controls(kind, data, allow=b"\n"):
    for i, c in enumerate(bytearray(data)):
        if (c < 0x20 and chr(c).encode() not in allow) or c == 0x7f:
            bad(kind, "control byte 0x%02x at offset %d: %s" % (c, i, show(data[max(0, i - 40):i + 40])))
            return False
    return True


def utf8(kind, data):
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        bad(kind, "not valid UTF-8 (%s): %s" % (e, show(data[max(0, e.start - 40):e.start + 40])))
        return None


def semicolon_frame(kind, frames):
    if not any(b"semi" in f and b"colon" in f for f in frames):
        bad(kind, "no frame holds the function \"semi;colon\" (as one frame); frames: %s"
            % show(b" | ".join(frames), 400))


def check_collapsed(kind, data, maxdepth, with_lines=True, root=False):
    if b"\0" in data:
        bad(kind, "NUL byte in the output")
    no_controls(kind, data)
    utf8(kind, data)
    if data and not data.endswith(b"\n"):
        bad(kind, "no final newline")
    allframes = []
    for line in data.split(b"\n")[:-1]:
        m = re.match(rb"^(.+) ([0-9]+)$", line, re.S)
        if not m:
            bad(kind, "line does not parse: %s" % show(line))
            continue
        stack = m.group(1)
        if stack in (b"(idle)", b"(failed)"):
            continue
        frames = stack.split(b";")
        if any(not f for f in frames):
            bad(kind, "empty frame in %s" % show(stack, 300))
        if len(frames) > maxdepth + (1 if root else 0):
            bad(kind, "%d frames (at most %d expected): a ';' inside a name? %s"
                % (len(frames), maxdepth, show(stack, 300)))
        if root and not frames[0].startswith(b"thread "):
            bad(kind, "no \"thread NAME (TID)\" root frame: %s" % show(stack))
        for f in frames[1 if root else 0:]:
            # FILE:FUNC:LINE, or FILE:FUNC where CPython has no line for the
            # instruction (e.g. the COPY_FREE_VARS prologue of 3.11+).
            if not re.match(rb"^.+:.+$", f, re.S):
                bad(kind, "frame is not FILE:FUNC[:LINE]: %s" % show(f))
                break
        allframes.extend(frames)
    semicolon_frame(kind, allframes)


def check_flamechart(kind, data, maxdepth):
    if b"\0" in data:
        bad(kind, "NUL byte in the output")
    no_controls(kind, data)
    utf8(kind, data)
    lines = data.split(b"\n")
    if lines[-1] != b"":
        bad(kind, "no final newline")
    lines = lines[:-1]
    if len(lines) % 2:
        bad(kind, "odd number of lines (%d): a newline inside a name?" % len(lines))
    allframes = []
    for i in range(0, len(lines) - 1, 2):
        if not re.match(rb"^[0-9]+$", lines[i]):
            bad(kind, "line %d is not a timestamp: %s" % (i + 1, show(lines[i])))
            break
        st = lines[i + 1]
        if st in (b"(idle)", b"(failed)"):
            continue
        if not st.endswith(b";"):
            bad(kind, "line %d is not a stack ending with ';': %s" % (i + 2, show(st)))
            break
        frames = st[:-1].split(b";")
        if len(frames) > maxdepth:
            bad(kind, "%d frames (at most %d expected): %s" % (len(frames), maxdepth, show(st, 300)))
        allframes.extend(frames)
    semicolon_frame(kind, allframes)


def check_svg(kind, data, path):
    if b"\0" in data:
        bad(kind, "NUL byte in the output")
    utf8(kind, data)
    if shutil.which("xmllint"):
        r = subprocess.run(["xmllint", "--noout", path], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        if r.returncode != 0:
            bad(kind, "xmllint --noout: %s" % r.stderr.decode("utf-8", "replace")[:600])
    else:
        import xml.etree.ElementTree as ET
        try:
            ET.fromstring(data)
        except ET.ParseError as e:
            bad(kind, "not well-formed XML: %s" % e)
    if b"<script>alert(1)" in data:
        bad(kind, "a file name was written into the SVG as markup: <script>alert(1) ...")
    if b"<tag a=" in data:
        bad(kind, "a function name was written into the SVG as markup: <tag a=...")
    if b"semi" not in data:
        bad(kind, "the function \"semi;colon\" is missing")


def strings_of(obj, out):
    if isinstance(obj, str):
        out.append(obj)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            out.append(k)
            strings_of(v, out)
    elif isinstance(obj, list):
        for v in obj:
            strings_of(v, out)
    return out


def check_json(kind, data):
    text = utf8(kind, data)
    if text is None:
        return
    try:
        obj = json.loads(text)
    except ValueError as e:
        bad(kind, "JSON does not parse: %s near %r" % (e, text[max(0, e.pos - 60):e.pos + 60]
                                                        if hasattr(e, "pos") else ""))
        return
    strs = strings_of(obj, [])
    if not any("semi" in s and "colon" in s for s in strs):
        bad(kind, "no name holds \"semi\" and \"colon\" together")
    if not any('<tag a="q">' in s for s in strs):
        bad(kind, "the name '<tag a=\"q\">...' did not survive JSON escaping")


def varint(b, i):
    v = 0
    shift = 0
    while True:
        if i >= len(b):
            raise ValueError("truncated varint")
        c = b[i]
        i += 1
        v |= (c & 0x7f) << shift
        if not c & 0x80:
            return v, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def fields(b):
    i = 0
    while i < len(b):
        key, i = varint(b, i)
        num, wt = key >> 3, key & 7
        if num == 0:
            raise ValueError("field number 0")
        if wt == 0:
            v, i = varint(b, i)
            yield num, wt, v
        elif wt == 1:
            i += 8
            yield num, wt, None
        elif wt == 2:
            n, i = varint(b, i)
            if i + n > len(b):
                raise ValueError("length-delimited field %d runs past the end" % num)
            yield num, wt, b[i:i + n]
            i += n
        elif wt == 5:
            i += 4
            yield num, wt, None
        else:
            raise ValueError("wire type %d" % wt)
    if i != len(b):
        raise ValueError("trailing bytes")


def check_pprof(kind, data):
    try:
        raw = gzip.decompress(data)
    except Exception as e:
        bad(kind, "does not decompress: %s" % e)
        return
    strings = []
    try:
        for num, wt, v in fields(raw):
            if num == 6 and wt == 2:
                strings.append(v)
            elif num in (1, 2, 3, 4, 5) and wt == 2:
                list(fields(v))           # nested messages well-formed
    except ValueError as e:
        bad(kind, "malformed protobuf: %s" % e)
        return
    if not strings or strings[0] != b"":
        bad(kind, "string_table[0] must be \"\"")
    for s in strings:
        try:
            s.decode("utf-8")
        except UnicodeDecodeError:
            bad(kind, "string_table entry is not UTF-8 (proto3 strings must be): %s" % show(s))
            break
    if not any(b"semi" in s and b"colon" in s for s in strings):
        bad(kind, "no string holds \"semi\" and \"colon\"")


def check_dump(kind, data, maxdepth):
    if b"\0" in data:
        bad(kind, "NUL byte in the output")
    no_controls(kind, data)
    utf8(kind, data)
    blocks = data.rstrip(b"\n").split(b"\n\n")
    frames = []
    for blk in blocks:
        lines = blk.split(b"\n")
        if not re.match(rb"^[0-9]+\*?: ", lines[0]):
            bad(kind, "thread header does not parse: %s" % show(lines[0]))
        if len(lines) - 1 > maxdepth:
            bad(kind, "%d frame lines for one thread (at most %d): a newline inside a name? %s"
                % (len(lines) - 1, maxdepth, show(blk, 300)))
        for f in lines[1:]:
            if not re.match(rb"^.+:.+$", f, re.S):
                bad(kind, "frame line is not FILE:FUNC[:LINE]: %s" % show(f))
                break
        frames.extend(lines[1:])
    semicolon_frame(kind, frames)


def main():
    maxdepth = int(sys.argv[1])
    for arg in sys.argv[2:]:
        kind, path = arg.split("=", 1)
        data = open(path, "rb").read()
        if kind == "collapsed":
            check_collapsed(kind, data, maxdepth)
        elif kind in ("collapsed-n",):
            check_collapsed(kind, data, maxdepth, with_lines=False)
        elif kind == "qualnames":
            check_collapsed(kind, data, maxdepth)
        elif kind == "per-thread":
            check_collapsed(kind, data, maxdepth, root=True)
        elif kind == "flamechart":
            check_flamechart(kind, data, maxdepth)
        elif kind == "svg":
            check_svg(kind, data, path)
        elif kind in ("speedscope", "chrome"):
            check_json(kind, data)
        elif kind == "pprof":
            check_pprof(kind, data)
        elif kind == "dump":
            check_dump(kind, data, maxdepth)
        else:
            bad(kind, "unknown kind")
    for p in problems:
        print(p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
