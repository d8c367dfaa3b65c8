"""Libreswan 5.x reply codes (`enum rc_type`, include/lswlog.h).

Pluto prefixes every reply line with `NNN `; whack strips the prefix and the first
code in [RC_EXIT_FLOOR, RC_EXIT_ROOF) becomes its exit status (sticky, 5.x rule).
"""

RC_COMMENT = 0  # status output and ordinary log lines
RC_LOG = 2
RC_SUCCESS = 4
RC_ENTERSECRET = 10  # password prompt: whack answers without echo
RC_USERPROMPT = 11  # username prompt: whack answers with echo
RC_EXIT_FLOOR = 20
RC_DUPNAME = 20
RC_UNKNOWN_NAME = 21
RC_ORIENT = 22
RC_CLASH = 23
RC_DEAF = 24
RC_ROUTE = 25
RC_RTBUSY = 26
RC_BADID = 27
RC_NOKEY = 28
RC_NOPEERIP = 29
RC_INITSHUNT = 30
RC_WILDCARD = 31
RC_CRLERROR = 32
RC_WHACK_PROBLEM = 33
RC_BADWHACKMESSAGE = 50
RC_NORETRANSMISSION = 51
RC_INTERNAL_ERROR = 52
RC_OPPOFAILURE = 53
RC_CRYPTOFAILED = 54
RC_AGGRALGO = 55
RC_FATAL = 56
RC_EXIT_ROOF = 100


def is_error(rc: int) -> bool:
    return RC_EXIT_FLOOR <= rc < RC_EXIT_ROOF
