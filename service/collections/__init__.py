"""Collections as the service holds them: the loaded-collection cache, json_path resolution,
on-demand builds and their quotas, live writes, and the domain errors they raise."""
