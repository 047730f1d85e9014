"""HQ SMS: what the sites received and sent."""
