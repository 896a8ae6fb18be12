"""The appliance's console: the first-boot banner (banner.py) and the setup fallback for
when no browser reaches the node, as a full-screen TUI (tui.py) or plain line prompts for
serial and dumb terminals (plain.py). Both ask the questions in questions.py, validate with
host/inputs.py, start setup through host/setup_request.py and follow it with progress.py,
exactly as the web UI does."""
