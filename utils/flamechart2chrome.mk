# utils/flamechart2chrome.mk - the --flamechart to Chrome trace converter.
#
#   make utils      build utils/flamechart2chrome (links libpyflame for its
#                   JSON string writer)
#
# Needs including from utils/module.mk or the Makefile (which include only
# */module.mk):   -include utils/flamechart2chrome.mk

.PHONY: utils
utils: utils/flamechart2chrome

utils/flamechart2chrome: utils/flamechart2chrome.c $(LIB)
	$(CC) $(ALL_CFLAGS) -o $@ $< $(LIB) $(LDFLAGS) $(LDLIBS_BASE)

clean: clean-flamechart2chrome
.PHONY: clean-flamechart2chrome
clean-flamechart2chrome:
	rm -f utils/flamechart2chrome
