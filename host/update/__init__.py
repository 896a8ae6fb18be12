"""App channel updates: check (what a channel would install), apply (installing it),
history (every check and apply) and request (the web UI's spooled requests); and
self_update, the appliance software's own update from signed host releases."""
