package dev.panatron.tokenize;

import java.util.Arrays;

/**
 * GPT-2's byte-level alphabet and the UTF-8 conversions around it.
 *
 * <p>{@code bytes_to_unicode}: every byte gets a printable character so a BPE vocabulary of strings
 * can hold arbitrary bytes. The printable Latin-1 bytes ('!'..'~', U+00A1..U+00AC, U+00AE..U+00FF)
 * map to themselves; the 68 others (controls, space, U+00AD...) map, in byte order, to U+0100,
 * U+0101, ... (so ' ' becomes 'Ġ' U+0120 and '\n' becomes 'Ċ' U+010A).
 */
final class ByteLevel {
    private ByteLevel() {}

    /** Byte (0..255) to its character. */
    static final char[] BYTE_TO_CHAR = new char[256];
    /** Character (below U+0200) to its byte, or -1. */
    private static final short[] CHAR_TO_BYTE = new short[0x200];

    static {
        boolean[] direct = new boolean[256];
        for (int b = '!'; b <= '~'; b++) direct[b] = true;
        for (int b = 0xA1; b <= 0xAC; b++) direct[b] = true;
        for (int b = 0xAE; b <= 0xFF; b++) direct[b] = true;
        int n = 0;
        for (int b = 0; b < 256; b++) BYTE_TO_CHAR[b] = direct[b] ? (char) b : (char) (256 + n++);
        Arrays.fill(CHAR_TO_BYTE, (short) -1);
        for (int b = 0; b < 256; b++) CHAR_TO_BYTE[BYTE_TO_CHAR[b]] = (short) b;
    }

    /** The byte a byte-level character stands for, or -1 if {@code c} is not one of the 256. */
    static int byteOf(char c) { return c < 0x200 ? CHAR_TO_BYTE[c] : -1; }

    /** The byte-level string of some bytes ({@code bytes[from, to)}). */
    static String map(byte[] bytes, int from, int to) {
        char[] c = new char[to - from];
        for (int i = from; i < to; i++) c[i - from] = BYTE_TO_CHAR[bytes[i] & 0xFF];
        return new String(c);
    }

    /**
     * The bytes a token string stands for, as HF's ByteLevel decoder reads it: its byte-level
     * characters, or, if one of its characters is not byte-level (an added token such as "é"), its
     * own UTF-8 bytes.
     */
    static void appendTokenBytes(String token, Bytes out) {
        int mark = out.size;
        for (int i = 0; i < token.length(); i++) {
            int b = byteOf(token.charAt(i));
            if (b < 0) {
                out.size = mark;
                appendUtf8(token, 0, token.length(), out);
                return;
            }
            out.add(b);
        }
    }

    // ------------------------------------------------------------------ UTF-8

    /** A growable byte array. */
    static final class Bytes {
        byte[] a;
        int size;

        Bytes(int capacity) { a = new byte[Math.max(16, capacity)]; }

        void add(int b) {
            if (size == a.length) a = Arrays.copyOf(a, a.length * 2);
            a[size++] = (byte) b;
        }

        void ensure(int extra) {
            if (size + extra > a.length) a = Arrays.copyOf(a, Math.max(a.length * 2, size + extra));
        }

        byte[] toArray() { return Arrays.copyOf(a, size); }
    }

    /** Appends the UTF-8 of {@code s[from, to)}; a lone surrogate becomes U+FFFD. */
    static void appendUtf8(CharSequence s, int from, int to, Bytes out) {
        out.ensure(to - from);
        for (int i = from; i < to; i++) {
            char c = s.charAt(i);
            if (c < 0x80) {
                out.add(c);
                continue;
            }
            int cp = c;
            if (Character.isHighSurrogate(c) && i + 1 < to && Character.isLowSurrogate(s.charAt(i + 1))) {
                cp = Character.toCodePoint(c, s.charAt(++i));
            } else if (Character.isSurrogate(c)) {
                cp = 0xFFFD;
            }
            appendCodePoint(cp, out);
        }
    }

    static void appendCodePoint(int cp, Bytes out) {
        if (cp < 0x80) {
            out.add(cp);
        } else if (cp < 0x800) {
            out.add(0xC0 | (cp >> 6));
            out.add(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out.add(0xE0 | (cp >> 12));
            out.add(0x80 | ((cp >> 6) & 0x3F));
            out.add(0x80 | (cp & 0x3F));
        } else {
            out.add(0xF0 | (cp >> 18));
            out.add(0x80 | ((cp >> 12) & 0x3F));
            out.add(0x80 | ((cp >> 6) & 0x3F));
            out.add(0x80 | (cp & 0x3F));
        }
    }

    /**
     * Decodes UTF-8 as Rust's {@code String::from_utf8_lossy} does: each maximal prefix of a
     * well-formed sequence that cannot be completed (and each byte that cannot start one) becomes
     * one U+FFFD.
     */
    static String decodeLossy(byte[] b, int from, int to) { return decode(b, from, to, true); }

    /** Decodes UTF-8 as Rust's {@code String::from_utf8}: null if the bytes are not valid UTF-8. */
    static String decodeStrict(byte[] b, int from, int to) { return decode(b, from, to, false); }

    private static String decode(byte[] b, int from, int to, boolean lossy) {
        StringBuilder sb = new StringBuilder(to - from);
        int i = from;
        while (i < to) {
            int c = b[i] & 0xFF;
            if (c < 0x80) {
                sb.append((char) c);
                i++;
                continue;
            }
            int need, cp, lo = 0x80, hi = 0xBF;
            if (c >= 0xC2 && c <= 0xDF) {
                need = 1;
                cp = c & 0x1F;
            } else if (c >= 0xE0 && c <= 0xEF) {
                need = 2;
                cp = c & 0x0F;
                if (c == 0xE0) lo = 0xA0;
                else if (c == 0xED) hi = 0x9F;
            } else if (c >= 0xF0 && c <= 0xF4) {
                need = 3;
                cp = c & 0x07;
                if (c == 0xF0) lo = 0x90;
                else if (c == 0xF4) hi = 0x8F;
            } else {
                if (!lossy) return null;
                sb.append('\uFFFD');
                i++;
                continue;
            }
            int j = i + 1;
            boolean ok = true;
            for (int k = 0; k < need; k++, j++) {
                if (j >= to) { ok = false; break; }
                int x = b[j] & 0xFF;
                if (x < lo || x > hi) { ok = false; break; }
                cp = (cp << 6) | (x & 0x3F);
                lo = 0x80;
                hi = 0xBF;
            }
            if (!ok) {
                if (!lossy) return null;
                sb.append('\uFFFD');
                i = j; // the maximal valid prefix is replaced as a whole
                continue;
            }
            sb.appendCodePoint(cp);
            i = j;
        }
        return sb.toString();
    }
}
