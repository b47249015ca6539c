from digestd.cli import main

if __name__ == "__main__":  # not when a render process (spawn) imports this
    main()
