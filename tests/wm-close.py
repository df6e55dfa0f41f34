#!/usr/bin/python3
"""Closes the top-level windows titled ARGV[1] on $DISPLAY the way a window manager does when the
user clicks a window's close button: an ICCCM WM_DELETE_WINDOW message (Xvfb runs no window
manager). Prints how many windows it asked. Needs Debian's python3-xlib."""
import sys

from Xlib import X, display, protocol

d = display.Display()
protocols, delete = d.intern_atom("WM_PROTOCOLS"), d.intern_atom("WM_DELETE_WINDOW")
asked = 0


def walk(w):
    global asked
    try:
        if w.get_wm_name() == sys.argv[1] and delete in (w.get_wm_protocols() or []):
            ev = protocol.event.ClientMessage(window=w, client_type=protocols, data=(32, [delete, X.CurrentTime, 0, 0, 0]))
            w.send_event(ev, event_mask=X.NoEventMask)
            asked += 1
        children = w.query_tree().children
    except Exception:  # a window gone meanwhile
        return
    for c in children:
        walk(c)


walk(d.screen().root)
d.flush()
print(asked)
