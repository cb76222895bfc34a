from dropcast.cli import main

main()
