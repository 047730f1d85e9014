"""The hotel at HQ: postings and wake-up outcomes per property, their search and report."""
