"""The hotel profile's PMS side: the FIAS link service and durable charge postings."""
