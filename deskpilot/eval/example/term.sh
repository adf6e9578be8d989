#!/bin/sh
# Example app: a terminal whose shell starts in the folder given (the task's shared folder).
cd "$1" || exit 1
exec xterm -fa Monospace -fs 14 -geometry 100x30+0+0 -e /bin/sh
