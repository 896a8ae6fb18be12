from isobuild.cli import main

main(prog_name="isobuild")
