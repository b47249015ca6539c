from digestd.cli import main

main()
