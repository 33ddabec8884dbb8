/**
 * Tokenizers that read Hugging Face {@code tokenizer.json} files and produce exactly the ids HF
 * tokenizers produces: {@link dev.panatron.tokenize.WordPieceTokenizer} for BERT-family models,
 * {@link dev.panatron.tokenize.BpeTokenizer} for byte-level BPE (GPT-2, Llama-3, Qwen2 ...) and
 * SentencePiece-style BPE with byte fallback (Llama-2, Mistral ...). Both implement
 * {@link dev.panatron.tokenize.Tokenizer}; {@link dev.panatron.tokenize.Tokenizer#fromFile} picks
 * one from the file's model type.
 */
package dev.panatron.tokenize;
