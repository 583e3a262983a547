from kubesage.cli.main import main

main()
