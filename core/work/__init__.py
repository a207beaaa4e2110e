"""The one engine for heavy work: tasks, leases, workers, and fanning a corpus run out to processes or Ray."""
