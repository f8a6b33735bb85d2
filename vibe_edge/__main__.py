from vibe_edge.cli import main

main()
