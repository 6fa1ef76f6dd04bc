"""The TPP quota ledger: the domain (units, policy, service, chain, store)."""
