"""The SIP edge: Kamailio config rendering and supervision, rtpengine control, pcap to WAV."""
