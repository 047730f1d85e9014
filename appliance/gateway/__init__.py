"""The SIM gateway: modems driven through drivers.modem, exposed as GSM channels."""
