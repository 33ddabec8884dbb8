package dev.panatron.tokenize;

import java.util.ArrayList;
import java.util.List;
import java.util.Random;

/** Test inputs for tokenizer parity: a curated, varied list and seeded random Unicode strings. */
final class TokenizerTexts {
    private TokenizerTexts() {}

    /** Hand-picked texts covering each normalization and splitting rule (>= 200 of them). */
    static List<String> curated() {
        List<String> t = new ArrayList<>();
        // plain English and casing
        String[] english = {
            "The quick brown fox jumps over the lazy dog.",
            "Sentence embeddings map text to dense vectors.",
            "I can't believe it's not butter!",
            "She said, \"Hello there,\" and left; he didn't answer.",
            "Transformers are a type of neural network architecture.",
            "What is the capital of France?",
            "unbelievably unaffordable antidisestablishmentarianism",
            "tokenization WordPiece subwords ##ing",
            "A man is playing a guitar.",
            "The weather is lovely today; let's go for a walk.",
            "It's 5 o'clock somewhere.",
            "e.g. i.e. etc. Mr. Dr. U.S.A.",
            "rock'n'roll", "state-of-the-art", "co-operate", "user_name_here", "snake_case and camelCase and PascalCase",
            "HELLO WORLD", "hello world", "Hello World", "hElLo WoRlD", "McDonald's iPhone eBay",
        };
        for (String s : english) t.add(s);
        // accents and combining marks
        String[] accents = {
            "café", "cafe\u0301", "naïve résumé", "Ñandú piñata", "über Müller Straße", "STRASSE ẞ ß",
            "Ångström", "A\u030Angstro\u0308m", "crème brûlée", "Dvořák Smetana Janáček", "Łódź Kraków Gdańsk",
            "Tiếng Việt có dấu", "Ελληνικά γλώσσα", "ΟΔΟΣ ΣΟΦΙΑΣ", "İstanbul ıslak IŞIK", "ǅemal ǈubljana",
            "x\u0301\u0323y", "a\u0323\u0301b", "a\u0301\u0323b", "e\u0300\u0301\u0302\u0303\u0304", "\u0301start mark",
            "Z\u0351\u0352\u0353a\u0354\u0355l\u0356g\u0357o", "ﬁ ﬂ ligatures", "Ⅻ Ⓐ ㎏ compat", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ",
            "Å Ω K", "\u212B \u2126 \u212A", "\u037E greek question mark", "\u0387 ano teleia",
        };
        for (String s : accents) t.add(s);
        // CJK, other scripts
        String[] scripts = {
            "中文字符测试", "我爱自然语言处理。", "日本語のテキスト、カタカナとひらがな。", "한국어 텍스트 처리", "한국어",
            "\uD840\uDC00\uD840\uDC01 ext B", "\uD86E\uDC20 U+2B820 gap", "\uD86E\uDD20 U+2B920", "豈 更 compat",
            "مرحبا بالعالم", "السَّلَامُ عَلَيْكُمْ", "שלום עולם", "नमस्ते दुनिया", "हिन्दी भाषा", "สวัสดีครับ",
            "Привет, мир!", "Ἀθῆναι", "ქართული", "Հայերեն", "ελληνικά και English mixed 中文 mix",
            "ᚠᛇᚻ᛫ᛒᛦᚦ runes", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math", "𝐁𝐨𝐥𝐝", "ꦗꦮ javanese",
        };
        for (String s : scripts) t.add(s);
        // emoji
        String[] emoji = {
            "I love it 😀", "😀😃😄😁", "👍🏽 thumbs", "👨‍👩‍👧‍👦 family", "🇫🇷🇩🇪 flags", "1️⃣ keycap", "❤️ heart",
            "emoji😀inside", "🙂.", "☃ snowman ★ star", "x🤖y🤖z",
        };
        for (String s : emoji) t.add(s);
        // punctuation runs
        String[] punct = {
            "!!!???...", "Wait... what?!", "—–- dashes ‒ ―", "«quotes» „German“ “English” ‘single’", "¿Qué? ¡Sí!",
            "、。「」『』【】", "(((nested)))", "[brackets] {braces} <angles>", "a+b=c; x^2 | y & z ~ w", "$100 €50 £20 ¥1000",
            "#hashtag @mention", "***bold*** ___under___", "....", "::;;,,", "\"''\"", "a/b\\c", "`code` ~tilde~",
            "100% sure!", "§ ¶ † ‡ • ‣ ※", "⁂ ⁇ ⁈ ⁉", "ʻokina ʼ", "\u2E4F Unicode 11 punct", "\u2E52 Unicode 13 punct",
        };
        for (String s : punct) t.add(s);
        // numbers, URLs, code
        String[] misc = {
            "3.14159", "1,000,000", "2023-10-05T12:34:56Z", "½ ¼ ¾", "① ② ③", "x² y³ H₂O", "0x1F600 0b1010",
            "https://www.example.com/path/to/page?query=1&other=two#frag", "http://例子.测试/路径", "user@example.com",
            "C:\\Program Files\\App\\app.exe", "/usr/local/bin/java -jar app.jar", "for (int i = 0; i < n; i++) { sum += a[i]; }",
            "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}", "SELECT * FROM users WHERE id = 42;", "<html><body>hi</body></html>",
            "v1.2.3-beta+build.5", "+1 (555) 123-4567", "1e-10 6.02e23", "ISBN 978-3-16-148410-0",
        };
        for (String s : misc) t.add(s);
        // control characters, zero-width, odd code points
        String[] odd = {
            "a\u0000b", "a\u0001b\u0007c", "esc\u001B[31mred\u001B[0m", "del\u007Fx", "nel\u0085line", "c1\u009Fend",
            "zero\u200Bwidth", "zw\u200Cnj\u200Dj", "word\u2060joiner", "\uFEFFbom start", "soft\u00ADhyphen",
            "rtl \u200F mark \u202E override \u202C", "replacement \uFFFD char", "private \uE000\uE001\uF8FF use",
            "plane15 \uDB80\uDC00 pua", "nonchar \uFFFE \uFFFF", "unassigned \u0378 \u0379", "\u08E2 arabic Cf since 9.0",
            "tag \uDB40\uDC01\uDB40\uDC20 chars", "\uDB40\uDC02 unassigned tag", "variation \uFE0F selector", "\u061C alm",
        };
        for (String s : odd) t.add(s);
        // whitespace variants
        String[] ws = {
            "tab\there", "new\nline", "crlf\r\nline", "nbsp\u00A0here", "em\u2003space", "thin\u2009space",
            "ideographic\u3000space", "ogham\u1680space", "narrow\u202Fnbsp", "math\u205Fspace", "vt\u000Bff\u000Cx",
            "fs\u001Cgs\u001Drs\u001Eus\u001F", "line\u2028sep\u2029para", "  leading and trailing  ", "\t\n\r ",
            "multiple     spaces", "\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200A",
        };
        for (String s : ws) t.add(s);
        // added/special tokens in the raw text
        String[] special = {
            "[MASK]", "The capital of France is [MASK].", "[CLS] already [SEP] there", "[mask] lower case",
            "[MASK][MASK]", "a[MASK]b", "[ MASK ]", "[PAD] [UNK]", "[MAS", "[[MASK]]", "x [SEP][SEP] y", "[MASK] é [MASK]",
        };
        for (String s : special) t.add(s);
        // edge lengths
        t.add("");
        t.add(" ");
        t.add("a");
        t.add(".");
        t.add("a".repeat(100));
        t.add("a".repeat(101));
        t.add("supercalifragilisticexpialidocious".repeat(4));
        t.add("é".repeat(120));
        t.add(("word ").repeat(130));
        t.add(("The quick brown fox jumps over the lazy dog. ").repeat(40));
        t.add(("日本語のテキスト。").repeat(60));
        t.add(("ab, ").repeat(300));
        t.add(("[MASK] ").repeat(140));
        // transformations of English sentences (casing, spacing, punctuation glued on)
        for (String s : english) {
            t.add(s.toUpperCase(java.util.Locale.ROOT));
            t.add(s.replace(' ', '\t'));
            t.add(s.replace(" ", "\u00A0"));
            t.add("«" + s + "»");
        }
        return t;
    }

    /**
     * Random strings from a fixed seed: code points drawn from a mix of ASCII, accents, combining
     * marks, CJK, whitespace/controls, emoji, the whole BMP and all planes (no lone surrogates),
     * sometimes with special-token text spliced in.
     */
    static List<String> random(long seed, int count, int maxLength) {
        return random(seed, count, maxLength, new String[] {"[MASK]", "[SEP]", "[CLS]", "[PAD]", "[UNK]", "[mask]", "##", "[MASK"});
    }

    /** Special-token and BPE-relevant strings spliced into {@link #randomBpe} texts. */
    static final String[] BPE_INSERTS = {"<|endoftext|>", "<|begin_of_text|>", "<|eot_id|>", "<|start_header_id|>", "<s>", "</s>",
        "<unk>", "<|endoftext", "'s", "'LL", "'Re", "\n\n", "   ", "\r\n", "2024", "\u2581", "<0x0A>", " the", "ing "};

    /** Like {@link #random(long, int, int)}, with BPE special tokens and contractions spliced in. */
    static List<String> randomBpe(long seed, int count, int maxLength) { return random(seed, count, maxLength, BPE_INSERTS); }

    /**
     * Texts for byte-level BPE: {@link #curated()} plus contractions, code, whitespace runs and
     * newlines, long numbers, emoji sequences, and the special tokens of GPT-2, Llama-3 and Llama-2
     * files inside text.
     */
    static List<String> bpeCurated() {
        List<String> t = new ArrayList<>(curated());
        String[] more = {
            // contractions, upper case too (Llama-3's are case-insensitive, GPT-2's are not)
            "it's we're they've I'm you'll he'd don't", "IT'S WE'RE THEY'VE I'M YOU'LL HE'D DON'T", "It'S We'Re",
            "'s 't 're 've 'm 'll 'd", "''s", "'ss 'tt", "x's y'S z'Re", "'\u017F long s folds to s", "rock 'n' roll", "'",
            "O'Neil's dog's bone", "the '90s", "'hello'", "\"it's\"",
            // code
            "def f(x):\n    return x * 2\n", "    if (a) {\n        b();\n    }\n", "\tindented\twith\ttabs",
            "for i in range(10):\n\tprint(i)", "x=1;y=2;z=x+y", "a->b; c=>d; e<=f; g!=h", "#include <stdio.h>\nint main() { return 0; }",
            "{\n  \"a\": [1, 2, 3],\n  \"b\": {\"c\": null}\n}\n", "SELECT a, b\r\nFROM t\r\nWHERE a > 0;",
            "// comment\n/* block */", "x   =   1", "foo(bar(baz(qux)))", "__init__ self.__dict__", "0x7fff_ffff 1e-9f",
            // whitespace runs and newlines
            "a" + " ".repeat(10) + "b", " ".repeat(5), "\n".repeat(5), "a \t\n b", " leading", "trailing ", "  two leading",
            "a\n\n\nb", "a \n\n b", "\n \n \n", " \t \t", "end with newline\n", "\r\r\n\n", "a\u3000\u3000b", "x\u00A0\u00A0y",
            "word\u2028line", "  \n  ", "\t\n", "a  b   c    d     e",
            // numbers
            "1234567890", "12345678901234567890123", "3.14159265358979323846", "1,234,567.89", "-42 +17 ±3",
            "\u0663\u0664\u0665 Arabic-Indic", "\u0967\u0968\u0969 Devanagari digits", "\uFF11\uFF12\uFF13 fullwidth", "Ⅻ ① ½ ²",
            "2024-01-01 12:00:00", "v2.0.1", "1st 2nd 3rd 4th", "100km/h", "$1,000,000.00",
            // emoji sequences
            "👩‍💻 👨‍👩‍👧 🏳️‍🌈", "🧑🏽‍🚀 astronaut", "👍👍🏻👍🏼👍🏽👍🏾👍🏿", "🇺🇸🇯🇵🇪🇺", "#️⃣ *️⃣", "🫠🫡🫢 new emoji", "😀".repeat(20),
            // scripts
            "Ελληνικά: Καλημέρα κόσμε", "עברית: שלום", "العربية: مرحبا بكم", "ไทย ภาษาไทย", "ᐃᓄᒃᑎᑐᑦ", "ꯃꯤꯇꯩ ꯂꯣꯟ",
            "日本語の文章です。東京は大きい。", "中文没有空格分词很难", "한국어는 띄어쓰기가 있습니다", "Việt Nam", "ﷺ ﷽",
            // special tokens inside text
            "<|endoftext|>", "Hello<|endoftext|>world", "a <|endoftext|> b", "<|endoftext|><|endoftext|>", "<|endoftext", "<|ENDOFTEXT|>",
            "<|begin_of_text|>Hi", "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>", "<|eot_id|>", "x<|eot_id|>y",
            "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>", "<|endofprompt|>", "<s>hello</s>", "<s> <s>", "<unk>", "a<unk>b",
            "<0x0A>", "\u2581hello \u2581", "\u2581\u2581", "</s></s>", "< s >",
            // long words (the word cache keeps words under 256 bytes)
            "a".repeat(300), "ab".repeat(200), "Supercalifragilisticexpialidocious".repeat(10), "語".repeat(300), "🙂".repeat(100),
            "x" + " ".repeat(300) + "y", "\n".repeat(300),
        };
        for (String s : more) t.add(s);
        return t;
    }

    /** Random strings with {@code inserts} spliced in now and then. */
    static List<String> random(long seed, int count, int maxLength, String[] inserts) {
        Random r = new Random(seed);
        int[] wsCtl = {0x00, 0x01, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x20, 0x7F, 0x85, 0xA0, 0xAD, 0x1680, 0x2000, 0x200A,
            0x200B, 0x200D, 0x2028, 0x202F, 0x205F, 0x2060, 0x3000, 0xFEFF, 0xFFFD, 0xE000, 0xF8FF};
        List<String> out = new ArrayList<>(count);
        for (int i = 0; i < count; i++) {
            int len = r.nextInt(maxLength + 1);
            StringBuilder sb = new StringBuilder(len * 2);
            for (int k = 0; k < len; k++) {
                int m = r.nextInt(100);
                int cp;
                if (m < 25) cp = 0x20 + r.nextInt(0x5F);
                else if (m < 35) cp = 0xC0 + r.nextInt(0x250 - 0xC0);
                else if (m < 45) cp = 0x300 + r.nextInt(0x70);
                else if (m < 53) cp = 0x4E00 + r.nextInt(0x5200);
                else if (m < 60) cp = wsCtl[r.nextInt(wsCtl.length)];
                else if (m < 65) cp = 0x1F300 + r.nextInt(0x300);
                else if (m < 85) cp = r.nextInt(0x10000);
                else if (m < 97) cp = r.nextInt(0x110000);
                else { sb.append(inserts[r.nextInt(inserts.length)]); continue; }
                if (cp >= 0xD800 && cp <= 0xDFFF) cp = 'x';
                sb.appendCodePoint(cp);
            }
            out.add(sb.toString());
        }
        return out;
    }
}
