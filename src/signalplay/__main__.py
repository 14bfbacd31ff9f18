"""`python -m signalplay`: the command line."""

from signalplay.cli import main

if __name__ == "__main__":
    main()
