"""Running several vibe-edge instances behind nginx, with Prometheus watching them.

    routing      the headers a balancer and clients agree on (conversation key, instance name)
    nginx        `vibe-edge deploy nginx`: a complete nginx.conf and the part for an existing nginx
    prometheus   `vibe-edge deploy prometheus`: a scrape configuration and the alert rules
    local        N `vibe-edge serve` processes and a real nginx on loopback (tests, the benchmark)

docs/DEPLOY.md explains the routing and its trade-offs; deploy/ at the top of the repository
holds the files generated for a three-instance example, the systemd unit and the containers.
"""
