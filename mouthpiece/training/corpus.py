"""Text to speak: short passages per language, cut into utterances by a seeded sampler.

The passages were written for this project to be phonetically varied (many bilabials,
labiodentals, rounded and spread vowels, pauses at punctuation). Utterances are contiguous
runs of 4–16 words, so the prosody stays sentence-like.
"""

from __future__ import annotations

import numpy as np

PASSAGES: dict[str, str] = {
    "en": (
        "My mother bought a pumpkin pie for the baby boy, but nobody ate it. Five brave "
        "people moved the heavy boxes up the narrow stairs before noon. Please bring me the "
        "blue umbrella from the porch; the weather looks rough today. We often walk by the "
        "river when the evening is warm and the water is quiet. Could you ferry the visitors "
        "over to the island at half past seven? The museum opens early on Mondays, and the "
        "guide will meet you by the fountain. Bob met Pam by the map, and they both laughed "
        "about the muddy path. Whoever wrote this poem loved the sea, the moon and the smell of "
        "rain. Thank you for waiting; your food will be ready in a few minutes. Peter picked "
        "a few ripe plums and put them in a paper bag. Of course I remember the summer we "
        "spent on the farm, feeding the sheep and fixing fences. The old violin sounded "
        "better than anyone expected. Numbers like four, nine and twelve are easy to say, but "
        "hard to hear in a noisy room. She whispered something, then smiled and looked away. "
        "Maybe tomorrow we should visit the market and buy fresh bread and butter. Every "
        "morning the bus stops at the corner by the bakery. How much would it cost to move "
        "the piano to the upper floor? Who knows what the future will bring, but we will "
        "face it together. Sometimes the simplest solution is the best one. The young "
        "puppy jumped over the fence and ran through the field of poppies."
    ),
    "de": (
        "Meine Mutter backt jeden Sonntag einen großen Apfelkuchen. Wir fahren morgen früh "
        "mit dem Zug nach München und besuchen das Museum. Bitte bring mir die blaue Tasse "
        "aus der Küche. Der Vogel singt im Baum vor dem Fenster, während die Sonne aufgeht. "
        "Peter und Paul spielen Fußball im Park bis zum Abend. Warum ist das Wasser im Winter "
        "so kalt? Vielleicht sollten wir einen Spaziergang am Fluss machen."
    ),
    "fr": (
        "Ma mère prépare une bonne soupe aux pommes de terre pour le dîner. Nous partons "
        "demain matin pour Paris avec nos amis. Pourquoi le bébé pleure-t-il encore? Le "
        "boulanger vend du pain frais et des petits gâteaux. Il fait beau aujourd'hui, "
        "allons nous promener au bord de la mer. Pierre a perdu son parapluie dans le métro."
    ),
    "es": (
        "Mi madre compra pan y fruta en el mercado cada mañana. Vamos a pasear por la playa "
        "cuando baje el sol. ¿Puedes abrir la ventana, por favor? El perro pequeño bebe agua "
        "fresca en el patio. Mañana visitaremos a mis abuelos en el pueblo. Pablo busca su "
        "bicicleta por todas partes."
    ),
    "it": (
        "Mia madre prepara la pasta con il pomodoro ogni domenica. Domani mattina partiamo "
        "per Roma con il treno veloce. Il bambino beve il latte e mangia un biscotto. "
        "Possiamo passeggiare lungo il fiume dopo cena? Paolo porta sempre la sua macchina "
        "fotografica in vacanza."
    ),
    "pt": (
        "Minha mãe faz um bolo de laranja todos os domingos. Amanhã vamos passear na praia "
        "com os meus primos. O pássaro pequeno bebe água na fonte do parque. Por favor, "
        "fecha a porta quando saíres."
    ),
    "nl": (
        "Mijn moeder bakt elke zondag een appeltaart. Morgen fietsen we samen naar het "
        "strand. De kleine poes speelt met een bal in de tuin. Wil je de boeken op de "
        "bovenste plank zetten?"
    ),
    "pl": (
        "Moja mama piecze pyszne ciasto z jabłkami w każdą niedzielę. Jutro rano pojedziemy "
        "pociągiem do babci. Mały piesek biega po parku i bawi się piłką. Proszę, podaj mi "
        "butelkę wody."
    ),
}


def utterances(language: str, rng: np.random.Generator, n: int,
               min_words: int = 4, max_words: int = 16) -> list[str]:
    """`n` utterances in `language` (a key of PASSAGES), each a contiguous word run."""
    words = PASSAGES[language].split()
    out = []
    for _ in range(n):
        length = int(rng.integers(min_words, max_words + 1))
        start = int(rng.integers(0, max(1, len(words) - length)))
        out.append(" ".join(words[start: start + length]))
    return out
