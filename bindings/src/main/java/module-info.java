/** The generated FFM bindings of panatron.h: internal, readable only by the library module. */
module dev.panatron.bindings {
    exports dev.panatron.ffm to dev.panatron;
}
