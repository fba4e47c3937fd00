# utils/module.mk - the CPython struct-offset table (abi/offsets_table.c).
#
#   make abi-tables   regenerate abi/offsets_table.c from the CPython headers
#                     present; entries of versions not installed are kept
#   make check-abi    compare the committed table, entry by entry, with the
#                     headers present (also run by `make check`)
#
# The interpreters are found by utils/abi-offsets/generate itself ($PYENV_ROOT
# versions, python*-config on $PATH, /usr/include); to name them instead:
#   make abi-tables ABI_PYTHONS="/opt/python3.13 /usr/bin/python3.12-config"
# (prefixes, include dirs or python-config programs).  See
# utils/abi-offsets/README.rst.

ABI_GENERATE := utils/abi-offsets/generate
ABI_TABLE    := abi/offsets_table.c
ABI_PYTHONS  ?=

.PHONY: abi-tables check-abi
abi-tables:
	CC='$(CC)' bash $(ABI_GENERATE) -o $(ABI_TABLE) \
	    $(if $(wildcard $(ABI_TABLE)),-k $(ABI_TABLE)) $(ABI_PYTHONS)

check-abi:
	@CC='$(CC)' bash $(ABI_GENERATE) -c $(ABI_TABLE) $(ABI_PYTHONS)

check: check-abi
