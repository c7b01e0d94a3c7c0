/*
 * Licensed under the Apache License, Version 2.0 (the "License"); you may not use this file
 * except in compliance with the License. You may obtain a copy of the License at
 * http://www.apache.org/licenses/LICENSE-2.0
 */
package io.flinkqwen.engine.hub;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import java.util.Optional;
import org.junit.jupiter.api.Test;

class RepoRefTest {

    @Test
    void parsesOrgNameAndOptionalRevision() {
        assertEquals(Optional.of(new RepoRef("Qwen/Qwen2-0.5B-Instruct", "main")),
                RepoRef.parse("Qwen/Qwen2-0.5B-Instruct"));
        assertEquals(Optional.of(new RepoRef("Qwen/Qwen2-0.5B-Instruct", "v1.0")),
                RepoRef.parse("Qwen/Qwen2-0.5B-Instruct@v1.0"));
        assertEquals(Optional.of(new RepoRef("a_b/c.d", "refs/pr/3")), RepoRef.parse("a_b/c.d@refs/pr/3"));
    }

    @Test
    void rejectsWhatIsNotAnOrgNameId() {
        for (String bad : new String[] {
            "", "Qwen", "/abs/path", "./models/x", "a/b/c", "a//b", "a/b@", "a/b@x y", "a--b/c",
            "a/b..c", "-a/b", "a/b-", "a/b@../x", "model.gguf", "C:\\models\\x", "a/" + "n".repeat(97)
        }) {
            assertTrue(RepoRef.parse(bad).isEmpty(), bad);
        }
    }

    @Test
    void validatesIdsAndRevisionsOnConstruction() {
        assertTrue(RepoRef.isValidRepoId("gpt2"), "legacy ids without an org are valid on the hub");
        assertFalse(RepoRef.isValidRepoId("a/b/c"));
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> new RepoRef("a b", "main"));
        assertTrue(e.getMessage().contains("'a b'"), e.getMessage());
        assertThrows(IllegalArgumentException.class, () -> new RepoRef("a/b", "../../etc"));
    }
}
