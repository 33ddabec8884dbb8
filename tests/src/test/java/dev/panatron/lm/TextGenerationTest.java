package dev.panatron.lm;

import dev.panatron.Precision;

import dev.panatron.tokenize.BpeTokenizer;
import org.junit.jupiter.api.Test;

import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** Text in, text out: the model directory's tokenizer.json, stop tokens, streamed decoding. */
class TextGenerationTest {
    @Test
    void stopTokensFromGenerationConfig() throws Exception {
        try (DecoderModel m = DecoderModel.load(DecoderParityTest.model("gpt2"), Precision.FP32, DecoderParityTest.CTX, 8)) {
            assertArrayEquals(new int[] {2}, m.stopTokens());
        }
    }

    @Test
    void streamedPiecesConcatenateToTheDecodedText() throws Exception {
        try (DecoderModel m = DecoderModel.load(DecoderParityTest.model("llama"), Precision.FP32, DecoderParityTest.CTX, 8)) {
            BpeTokenizer tok = m.tokenizer();
            int[] prompt = tok.encodeToIds("The fox and the dog", true);
            assertTrue(prompt.length > 1);
            assertEquals("The fox and the dog", tok.decode(prompt, true));
            TextStreamer ts = new TextStreamer(tok, true);
            StringBuilder sb = new StringBuilder();
            GenerationConfig cfg = GenerationConfig.sample(24, 1.0f, 0, 1f, 7).withStopTokens(m.stopTokens());
            int[] out = new Generator(m).generate(new int[][] {prompt}, cfg, (b, t, last) -> {
                sb.append(ts.next(t));
                if (last) sb.append(ts.finish());
            })[0];
            assertEquals(tok.decode(out, true), sb.toString());
        }
    }

    @Test
    void multiByteCharactersSplitAcrossTokensStreamWhole() throws Exception {
        BpeTokenizer tok = BpeTokenizer.fromFile(DecoderParityTest.model("gpt2").resolve("tokenizer.json"));
        // the tiny vocabulary has no merges for these: every UTF-8 byte is its own token
        String text = "a é 中文 😀!";
        int[] ids = tok.encodeToIds(text, false);
        assertTrue(ids.length > text.getBytes(StandardCharsets.UTF_8).length - 3, "expected mostly byte tokens");
        TextStreamer ts = new TextStreamer(tok, true);
        List<String> pieces = new ArrayList<>();
        for (int id : ids) pieces.add(ts.next(id));
        pieces.add(ts.finish());
        assertEquals(text, String.join("", pieces));
        for (String p : pieces) assertTrue(!p.contains("\uFFFD"), "piece " + p + " holds half a character");
        // the emoji's 4 bytes come as 4 tokens: 3 of them return "" and the last the whole emoji
        assertTrue(pieces.contains("😀") || pieces.stream().anyMatch(p -> p.endsWith("😀")), pieces.toString());
        // generation that ends inside a character: finish() gives the replacement character
        TextStreamer cut = new TextStreamer(tok, true);
        int[] emoji = tok.encodeToIds("😀", false);
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < emoji.length - 1; i++) sb.append(cut.next(emoji[i]));
        assertEquals("", sb.toString());
        assertEquals(tok.decode(java.util.Arrays.copyOf(emoji, emoji.length - 1), true), cut.finish());
    }

    @Test
    void missingTokenizerIsAClearError(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
        Path src = DecoderParityTest.model("gpt2");
        for (String f : new String[] {"config.json", "model.safetensors"}) Files.copy(src.resolve(f), tmp.resolve(f));
        try (DecoderModel m = DecoderModel.load(tmp, Precision.FP32, DecoderParityTest.CTX, 8)) {
            String msg = assertThrows(java.nio.file.NoSuchFileException.class, m::tokenizer).getMessage();
            assertTrue(msg.contains("tokenizer.json"), msg);
            assertArrayEquals(new int[] {2}, m.stopTokens()); // config.json's eos
        }
    }

    @Test
    void badGenerationConfig(@org.junit.jupiter.api.io.TempDir Path tmp) throws Exception {
        Path src = DecoderParityTest.model("gpt2");
        for (String f : new String[] {"config.json", "model.safetensors"}) Files.copy(src.resolve(f), tmp.resolve(f));
        Files.writeString(tmp.resolve("generation_config.json"), "{\"eos_token_id\": [2, 9999]}");
        try (DecoderModel m = DecoderModel.load(tmp, Precision.FP32, DecoderParityTest.CTX, 8)) {
            String msg = assertThrows(dev.panatron.io.ModelFormatException.class, m::stopTokens).getMessage();
            assertTrue(msg.contains("eos_token_id 9999"), msg);
        }
    }
}
