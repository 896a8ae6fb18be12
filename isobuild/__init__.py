"""isobuild: remaster the Ubuntu Server 24.04 live-server ISO into the Alga appliance ISO."""
