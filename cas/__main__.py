from cas.cli import main

main()
