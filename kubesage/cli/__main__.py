from kubesage.cli import main

main()
