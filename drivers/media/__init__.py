"""pjsua2 media workers: announcements, IVR, echo, conference rooms, call origination."""
