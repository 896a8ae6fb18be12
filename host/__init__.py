"""The Alga appliance host package: setup engine, status, web app, console, support, updates."""
