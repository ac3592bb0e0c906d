"""Local adapters: the filesystem store and the subprocess job launcher used by local mode."""
