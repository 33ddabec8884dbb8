package dev.panatron.lm;

/** Streaming: called once per generated token, in order, as soon as it is picked. */
@FunctionalInterface
public interface TokenListener {
    /** @param sequence the prompt's index; @param token the new id; @param last whether the sequence ends here */
    void onToken(int sequence, int token, boolean last);
}
