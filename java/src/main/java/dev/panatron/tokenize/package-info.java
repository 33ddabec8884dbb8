/**
 * Tokenizers that read Hugging Face {@code tokenizer.json} files and produce exactly the ids HF
 * tokenizers produces: {@link dev.panatron.tokenize.WordPieceTokenizer} for BERT-family models.
 */
package dev.panatron.tokenize;
