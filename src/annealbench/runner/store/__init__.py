"""The results directory: run folders, atomic writes, the lock, the ledger of submissions, and
`annealbench status`."""
