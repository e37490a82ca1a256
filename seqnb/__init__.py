"""seqnb: the library behind the book on the Markovian nature of next-item recommendation."""

__version__ = "0.1.0"
