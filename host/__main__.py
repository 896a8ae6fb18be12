from host.cli import main

main(prog_name="alga-appliance")
