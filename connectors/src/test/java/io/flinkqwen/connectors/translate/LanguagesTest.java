/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.connectors.translate;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import io.flinkqwen.operators.inference.Task;
import java.util.Optional;
import org.junit.jupiter.api.Test;

class LanguagesTest {

    @Test
    void everyCodeIsOneTaskTranslateAcceptsAndItsPromptNamesTheSameLanguage() {
        assertTrue(Languages.BY_CODE.size() >= 29, "the report's ~30 languages: " + Languages.BY_CODE.keySet());
        Languages.BY_CODE.forEach((code, name) -> {
            Task t = Task.translate(code);
            assertTrue(t.systemPrompt().contains(" " + name + "."), code + ": " + t.systemPrompt());
        });
    }

    @Test
    void languagesResolveByCodeByEnglishNameAndByRegionTagWhateverTheCase() {
        Languages.BY_CODE.forEach((code, name) -> {
            assertEquals(Optional.of(code), Languages.code(code));
            assertEquals(Optional.of(code), Languages.code(code.toUpperCase(java.util.Locale.ROOT)));
            assertEquals(Optional.of(code), Languages.code(name));
            assertEquals(Optional.of(code), Languages.code(" " + name.toLowerCase(java.util.Locale.ROOT) + " "));
        });
        assertEquals(Optional.of("pt"), Languages.code("pt-BR"));
        assertEquals(Optional.of("zh"), Languages.code("zh_Hans"));
        assertEquals(Optional.of("zh"), Languages.code("Mandarin"));
        assertEquals(Optional.of("fa"), Languages.code("Farsi"));
        assertEquals(Optional.of("tl"), Languages.code("Filipino"));
    }

    @Test
    void unknownLanguagesAreEmptyOrAnErrorNamingTheValueAndTheCodes() {
        assertEquals(Optional.empty(), Languages.code("xx"));
        assertEquals(Optional.empty(), Languages.code("Klingon"));
        assertEquals(Optional.empty(), Languages.code("xx-DE"));
        assertEquals(Optional.empty(), Languages.code(""));
        assertEquals(Optional.empty(), Languages.code(null));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Languages.require("Klingon", "--to"));
        assertTrue(e.getMessage().startsWith("unknown language 'Klingon' in --to: use an ISO 639-1 code or English name of ar, bn,"),
                e.getMessage());
    }
}
