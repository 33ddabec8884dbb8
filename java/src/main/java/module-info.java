/** Panatron: compressed transformer inference over native kernels (FFM). */
module dev.panatron {
    requires dev.panatron.bindings;
    requires com.fasterxml.jackson.databind;
    requires info.picocli;
    requires java.net.http;
    exports dev.panatron;
    exports dev.panatron.tokenize;
    exports dev.panatron.models;
    opens dev.panatron.cli to info.picocli;
}
