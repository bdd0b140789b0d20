"""The Workflows language: lexer, Pratt parser, AST, values and the error tags."""
