package dev.panatron.tokenize;

import com.knuddels.jtokkit.Encodings;
import com.knuddels.jtokkit.api.Encoding;
import com.knuddels.jtokkit.api.EncodingRegistry;
import com.knuddels.jtokkit.api.EncodingType;
import com.knuddels.jtokkit.api.IntArrayList;
import org.junit.jupiter.params.ParameterizedTest;
import org.junit.jupiter.params.provider.ValueSource;

import java.io.IOException;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

/**
 * A second, independent reference: jtokkit (a Java port of OpenAI's tiktoken: its own regex
 * splitting and its own byte-pair merging by rank) on the same vocabularies our tokenizer.json
 * files were made from. Ids must agree on texts without special-token strings (jtokkit's
 * encodeOrdinary treats those as text).
 */
class BpeJtokkitParityTest {

    static final EncodingRegistry REGISTRY = Encodings.newDefaultEncodingRegistry();

    @ParameterizedTest
    @ValueSource(strings = {"r50k_base", "cl100k_base", "o200k_base"})
    void idsMatchJtokkit(String encoding) throws IOException {
        Path dir = BpeTestFiles.dir();
        Path file = switch (encoding) {
            case "r50k_base" -> BpeTestFiles.gpt2(dir);
            case "cl100k_base" -> BpeTestFiles.llama3Style(dir);
            default -> BpeTestFiles.o200k(dir);
        };
        BpeTokenizer ours = BpeTokenizer.fromFile(file);
        Encoding ref = REGISTRY.getEncoding(switch (encoding) {
            case "r50k_base" -> EncodingType.R50K_BASE;
            case "cl100k_base" -> EncodingType.CL100K_BASE;
            default -> EncodingType.O200K_BASE;
        });
        List<String> texts = new ArrayList<>();
        for (String t : TokenizerTexts.bpeCurated()) if (!t.contains("<|")) texts.add(t);
        texts.addAll(TokenizerTexts.random(31L + encoding.hashCode(), 2000, 60)); // (WordPiece inserts: plain text here)
        texts.addAll(TokenizerTexts.random(32L, 10, 3000));
        List<String> bad = new ArrayList<>();
        for (String t : texts) {
            int[] want = ref.encodeOrdinary(t).toArray();
            int[] got = ours.encode(t, null, false).ids();
            if (!Arrays.equals(want, got)) {
                bad.add("[" + WordPieceParityTest.show(t) + "]\n  jtokkit " + Arrays.toString(want) + "\n  ours    " + Arrays.toString(got));
            }
        }
        if (!bad.isEmpty()) fail(encoding + ": " + bad.size() + " of " + texts.size() + " texts differ from jtokkit; first:\n"
                + String.join("\n", bad.subList(0, Math.min(6, bad.size()))));
        assertTrue(texts.size() >= 2200);
        // and jtokkit decodes our ids back to the text
        for (String t : texts.subList(0, 300)) {
            IntArrayList ids = new IntArrayList();
            for (int id : ours.encode(t, null, false).ids()) ids.add(id);
            assertEquals(t, ref.decode(ids));
        }
    }
}
