from clusterctl.cli.main import run

run()
