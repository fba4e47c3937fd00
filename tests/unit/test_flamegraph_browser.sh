#!/bin/sh
# test_flamegraph_browser.sh - optional check of the flame-graph SVG's script
# in a real browser (headless Chromium).  Run by `make check` (check-unit).
#
#   sh tests/unit/test_flamegraph_browser.sh        (from anywhere; needs ./flamegraph/flamegraph built)
#   FLAMEGRAPH=/path/to/flamegraph sh tests/unit/test_flamegraph_browser.sh
#
# Renders a small profile, loads the SVG in an <iframe> of a small HTML page
# whose script clicks a frame and checks that the zoom widened it, hid its
# siblings and faded its ancestors, that "Reset Zoom" restores the widths,
# and that a search (prompt stubbed) highlights matches and reports a
# matched share that counts nested matches once.  The page writes
# "RESULT: PASS" or "RESULT: FAIL ..." into its body, read back with
# --dump-dom.  Prints SKIP (exit 0) when Chromium or the program is missing.
set -u

here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
prog=${FLAMEGRAPH:-$root/flamegraph/flamegraph}

browser=
for b in chromium chromium-browser google-chrome google-chrome-stable; do
    if command -v "$b" >/dev/null 2>&1; then
        browser=$b
        break
    fi
done
if [ -z "$browser" ]; then
    echo "SKIP: test_flamegraph_browser: chromium not installed (apt-get install -y chromium)"
    exit 0
fi
if [ ! -x "$prog" ]; then
    echo "SKIP: test_flamegraph_browser: $prog not built (run make, or set FLAMEGRAPH)"
    exit 0
fi

tmp=$(mktemp -d /tmp/test_flamegraph_browser.XXXXXX)
profile=$(mktemp -d /tmp/test_flamegraph_browser_profile.XXXXXX)
trap 'rm -rf "$tmp" "$profile"' EXIT INT TERM

# total 20: main 20 > work 14 > (rec 4 > rec 4), (calc 10); main > idle 6
cat > "$tmp/in.txt" <<'EOF'
main.py:main:1;main.py:work:5;lib.py:rec:9;lib.py:rec:9 4
main.py:main:1;main.py:work:5;calc.py:calc:3 10
main.py:main:1;(idle) 6
EOF
if ! "$prog" --minwidth=0 -o "$tmp/graph.svg" "$tmp/in.txt"; then
    echo "FAIL: test_flamegraph_browser: $prog failed"
    exit 1
fi

cat > "$tmp/page.html" <<'EOF'
<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>flamegraph browser check</title></head>
<body><pre id="out">RESULT: FAIL (the check did not run)</pre>
<iframe id="fr" src="graph.svg" width="1300" height="400"></iframe>
<script>
function run() {
  var out = document.getElementById("out");
  var errs = [];
  function check(cond, what) { if (!cond) errs.push(what); }
  try {
    var win = document.getElementById("fr").contentWindow;
    var doc = win.document;
    function frame(name) {
      var gs = doc.querySelectorAll("#fg-frames > g");
      for (var i = 0; i < gs.length; i++) {
        var t = gs[i].querySelector("title").textContent;
        if (t.indexOf(name + " (") === 0) return gs[i];
      }
      return null;
    }
    function width(name) { return Number(frame(name).querySelector("rect").getAttribute("width")); }
    function hidden(name) { return win.getComputedStyle(frame(name)).display === "none"; }
    function click(el) { el.dispatchEvent(new win.MouseEvent("click", { bubbles: true, cancelable: true, view: win })); }

    var full = width("all");
    var before = width("main.py:work:5");
    check(Math.abs(full - 1180) < 0.1, "root width " + full);
    check(Math.abs(before - 1180 * 14 / 20) < 0.1, "work width before " + before);

    click(frame("main.py:work:5").querySelector("rect"));
    var after = width("main.py:work:5");
    check(Math.abs(after - full) < 0.1, "work width after zoom " + after);
    check(Math.abs(width("calc.py:calc:3") - full * 10 / 14) < 0.1, "calc width after zoom " + width("calc.py:calc:3"));
    check(hidden("(idle)"), "sibling (idle) not hidden");
    check(!hidden("main.py:main:1") && frame("main.py:main:1").classList.contains("fg-anc"), "ancestor not shown faded");
    check(!doc.getElementById("fg-unzoom").classList.contains("fg-hidden"), "Reset Zoom not shown");

    click(doc.getElementById("fg-unzoom"));
    check(Math.abs(width("main.py:work:5") - before) < 0.1, "width after reset " + width("main.py:work:5"));
    check(!hidden("(idle)"), "(idle) hidden after reset");

    /* hover shows the frame in the details line */
    frame("calc.py:calc:3").querySelector("rect").dispatchEvent(new win.MouseEvent("mouseover", { bubbles: true, view: win }));
    var det = doc.getElementById("fg-details").textContent;
    check(det.indexOf("calc.py:calc:3 (10 samples, 50.00%)") === 0, "details line '" + det + "'");

    /* search through Ctrl-F with the prompt stubbed: nested rec counted once */
    win.prompt = function () { return "rec"; };
    win.dispatchEvent(new win.KeyboardEvent("keydown", { key: "f", ctrlKey: true, bubbles: true, cancelable: true }));
    var m = doc.getElementById("fg-matched").textContent;
    check(m === "Matched: 20.00%", "matched '" + m + "'");
    var fill = frame("lib.py:rec:9").querySelector("rect").getAttribute("fill");
    check(fill === "rgb(230,0,230)", "match not highlighted: " + fill);

    /* zoomed into work, the share is of work's samples */
    click(frame("main.py:work:5").querySelector("rect"));
    m = doc.getElementById("fg-matched").textContent;
    check(m === "Matched: 28.57%", "matched when zoomed '" + m + "'");
  } catch (e) {
    errs.push("exception: " + e);
  }
  out.textContent = errs.length ? "RESULT: FAIL " + errs.join("; ") : "RESULT: PASS";
}
document.getElementById("fr").addEventListener("load", run);
</script>
</body></html>
EOF

dom=$(timeout 60 "$browser" --headless --no-sandbox --disable-gpu --disable-background-networking \
      --disable-component-update --disable-sync --no-first-run --user-data-dir="$profile" \
      --allow-file-access-from-files --virtual-time-budget=5000 \
      --dump-dom "file://$tmp/page.html" 2>"$tmp/browser.log")
rc=$?
result=$(printf '%s\n' "$dom" | grep -o 'RESULT: [^<]*' | head -n 1)
case "$result" in
"RESULT: PASS")
    echo "PASS: test_flamegraph_browser (zoom, reset, details, search in $browser)"
    exit 0 ;;
"")
    echo "FAIL: test_flamegraph_browser: no result from $browser (exit $rc)"
    tail -n 5 "$tmp/browser.log"
    exit 1 ;;
*)
    echo "FAIL: test_flamegraph_browser: $result"
    exit 1 ;;
esac
