"""What the web consoles (HQ's and the appliance's agent pages) share: sessions with CSRF
tokens (``sessions``) and the request plumbing around them (``pages``)."""
