package dev.panatron;

import org.junit.jupiter.api.Test;

import java.lang.foreign.Arena;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.util.SplittableRandom;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

/** {@link MemoryStream}: the read checksum against a plain sum, the copy against the source, bad input. */
class MemoryStreamTest {
    @Test
    void readAndCopy() {
        SplittableRandom r = new SplittableRandom(7);
        try (Arena a = Arena.ofConfined(); Context c1 = Context.create(1); Context c2 = Context.create(2)) {
            for (long bytes : new long[] {0, 8, (1 << 20) - 8, (1 << 20) + 8, 3L * (1 << 20) + 4096}) {
                MemorySegment src = a.allocate(Math.max(8, bytes), 64), dst = a.allocate(Math.max(8, bytes), 64);
                long want = 0;
                for (long i = 0; i < bytes / 8; i++) {
                    long v = r.nextLong();
                    src.setAtIndex(ValueLayout.JAVA_LONG, i, v);
                    want += v;
                }
                for (Context c : new Context[] {c1, c2}) {
                    assertEquals(want, MemoryStream.read(c, src.asSlice(0, bytes)), "read " + bytes + " bytes");
                    dst.fill((byte) -1);
                    MemoryStream.copy(c, src.asSlice(0, bytes), dst);
                    assertEquals(-1L, src.asSlice(0, bytes).mismatch(dst.asSlice(0, bytes)), "copy " + bytes + " bytes");
                }
            }
        }
    }

    @Test
    void badInput() {
        try (Arena a = Arena.ofConfined(); Context c = Context.create(1)) {
            MemorySegment s = a.allocate(64, 64);
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> MemoryStream.read(c, s.asSlice(0, 12)));
            assertTrue(e.getMessage().contains("multiple of 8"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> MemoryStream.copy(c, s.asSlice(0, 32), s.asSlice(16, 32)));
            assertTrue(e.getMessage().contains("overlap"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> MemoryStream.copy(c, s.asSlice(0, 32), a.allocate(16)));
            assertTrue(e.getMessage().contains("dst holds 16 bytes"), e.getMessage());
            e = assertThrows(IllegalArgumentException.class, () -> MemoryStream.read(c, MemorySegment.ofArray(new long[4])));
            assertTrue(e.getMessage().contains("native"), e.getMessage());
        }
    }
}
