"""Synchronization with peers: HKP push (cks_sync), mail, reconciliation."""
