from fitlab.bench.cli import main

main()
