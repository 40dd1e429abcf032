from stackwatch.cli import main

main()
