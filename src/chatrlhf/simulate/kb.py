"""The project's own knowledge base: well-established facts with dates and numbers.

Consumed by the task families (to write questions and their answer keys) and by nothing else.
Every entity carries a fixed split ("train" or "eval") assigned by its position in its table, so
evaluation prompts ask about entities the policy never saw in training. Facts are limited to ones
that are not disputed; where a common alternative exists (Newton's Julian birth year, "Kiev") it is
listed in ``accept`` so the judge does not punish it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Every EVAL_EVERY-th entity of a table (offset EVAL_OFFSET) is held out for evaluation.
EVAL_EVERY = 4
EVAL_OFFSET = 1


@dataclass(frozen=True)
class Person:
    name: str
    born: int
    died: int
    pronoun: str  # "he" / "she": follow-up questions refer back with it
    known_as: str  # a short description: "an explorer"
    accept_born: tuple[str, ...] = ()


@dataclass(frozen=True)
class Country:
    name: str
    capital: str
    continent: str
    other_city: str  # a famous city that is NOT the capital (false-premise material)
    accept_capital: tuple[str, ...] = ()
    accept_continent: tuple[str, ...] = ()


@dataclass(frozen=True)
class Planet:
    name: str
    order: int
    kind: str  # "rocky planet", "gas giant", "ice giant"


@dataclass(frozen=True)
class Element:
    name: str
    symbol: str
    number: int
    accept_name: tuple[str, ...] = ()


@dataclass(frozen=True)
class Animal:
    name: str
    plural: str
    cls: str  # "mammal", "bird", ...
    legs: int
    lays_eggs: bool


@dataclass(frozen=True)
class Invention:
    name: str  # used after "the": "the telephone"
    inventor: str
    year: int
    accept_year: tuple[str, ...] = field(default=())
    article: str = "the"

    @property
    def ref(self) -> str:
        """How a sentence names it: "the telephone", but "dynamite"."""
        return f"{self.article} {self.name}".strip()


P = Person
PEOPLE: tuple[Person, ...] = (
    P("Christopher Columbus", 1451, 1506, "he", "an explorer"),
    P("Leonardo da Vinci", 1452, 1519, "he", "a painter and inventor"),
    P("William Shakespeare", 1564, 1616, "he", "a playwright"),
    P("Galileo Galilei", 1564, 1642, "he", "an astronomer"),
    P("Isaac Newton", 1643, 1727, "he", "a physicist", ("1642",)),
    P("Wolfgang Amadeus Mozart", 1756, 1791, "he", "a composer"),
    P("Ludwig van Beethoven", 1770, 1827, "he", "a composer"),
    P("Napoleon Bonaparte", 1769, 1821, "he", "a French emperor"),
    P("Abraham Lincoln", 1809, 1865, "he", "a US president"),
    P("Charles Darwin", 1809, 1882, "he", "a naturalist"),
    P("Charles Dickens", 1812, 1870, "he", "a novelist"),
    P("Florence Nightingale", 1820, 1910, "she", "a nurse"),
    P("Marie Curie", 1867, 1934, "she", "a physicist and chemist"),
    P("Albert Einstein", 1879, 1955, "he", "a physicist"),
    P("Mahatma Gandhi", 1869, 1948, "he", "an independence leader"),
    P("Nikola Tesla", 1856, 1943, "he", "an inventor"),
    P("Thomas Edison", 1847, 1931, "he", "an inventor"),
    P("Alexander Graham Bell", 1847, 1922, "he", "an inventor"),
    P("Queen Victoria", 1819, 1901, "she", "a British queen"),
    P("George Washington", 1732, 1799, "he", "the first US president"),
    P("Jane Austen", 1775, 1817, "she", "a novelist"),
    P("Vincent van Gogh", 1853, 1890, "he", "a painter"),
    P("Pablo Picasso", 1881, 1973, "he", "a painter"),
    P("Frida Kahlo", 1907, 1954, "she", "a painter"),
    P("Ada Lovelace", 1815, 1852, "she", "a mathematician"),
    P("Alan Turing", 1912, 1954, "he", "a computer scientist"),
    P("Johann Sebastian Bach", 1685, 1750, "he", "a composer"),
    P("Michelangelo", 1475, 1564, "he", "a sculptor and painter"),
    P("Nicolaus Copernicus", 1473, 1543, "he", "an astronomer"),
    P("Martin Luther King Jr.", 1929, 1968, "he", "a civil rights leader"),
    P("Winston Churchill", 1874, 1965, "he", "a British prime minister"),
    P("Sigmund Freud", 1856, 1939, "he", "a psychologist"),
    P("Louis Pasteur", 1822, 1895, "he", "a chemist"),
    P("Orville Wright", 1871, 1948, "he", "an aviation pioneer"),
    P("Benjamin Franklin", 1706, 1790, "he", "a statesman and scientist", ("1705",)),
    P("Karl Marx", 1818, 1883, "he", "a philosopher"),
    P("Rosalind Franklin", 1920, 1958, "she", "a chemist"),
    P("Gregor Mendel", 1822, 1884, "he", "a geneticist"),
    P("Dmitri Mendeleev", 1834, 1907, "he", "a chemist"),
    P("Mark Twain", 1835, 1910, "he", "a writer"),
    P("Leo Tolstoy", 1828, 1910, "he", "a novelist"),
    P("Claude Monet", 1840, 1926, "he", "a painter"),
    P("Samuel Morse", 1791, 1872, "he", "an inventor"),
    P("Alfred Nobel", 1833, 1896, "he", "a chemist"),
    P("Rembrandt", 1606, 1669, "he", "a painter"),
    P("Emily Dickinson", 1830, 1886, "she", "a poet"),
    P("Edgar Allan Poe", 1809, 1849, "he", "a writer"),
    P("Louis Braille", 1809, 1852, "he", "a teacher"),
    P("Johannes Kepler", 1571, 1630, "he", "an astronomer"),
    P("Michael Faraday", 1791, 1867, "he", "a scientist"),
    P("Queen Elizabeth I", 1533, 1603, "she", "an English queen"),
    P("Neil Armstrong", 1930, 2012, "he", "an astronaut"),
    P("Yuri Gagarin", 1934, 1968, "he", "a cosmonaut"),
    P("Elvis Presley", 1935, 1977, "he", "a singer"),
    P("John Lennon", 1940, 1980, "he", "a musician"),
    P("Ernest Hemingway", 1899, 1961, "he", "a writer"),
    P("Agatha Christie", 1890, 1976, "she", "a writer"),
    P("Frederic Chopin", 1810, 1849, "he", "a composer"),
    P("Hans Christian Andersen", 1805, 1875, "he", "a writer"),
    P("Jules Verne", 1828, 1905, "he", "a writer"),
)

C = Country
COUNTRIES: tuple[Country, ...] = (
    C("France", "Paris", "Europe", "Marseille"),
    C("Germany", "Berlin", "Europe", "Munich"),
    C("Italy", "Rome", "Europe", "Milan"),
    C("Spain", "Madrid", "Europe", "Barcelona"),
    C("Portugal", "Lisbon", "Europe", "Porto"),
    C("Belgium", "Brussels", "Europe", "Antwerp"),
    C("Switzerland", "Bern", "Europe", "Zurich"),
    C("Austria", "Vienna", "Europe", "Salzburg"),
    C("Poland", "Warsaw", "Europe", "Krakow"),
    C("Greece", "Athens", "Europe", "Thessaloniki"),
    C("Sweden", "Stockholm", "Europe", "Gothenburg"),
    C("Norway", "Oslo", "Europe", "Bergen"),
    C("Finland", "Helsinki", "Europe", "Tampere"),
    C("Denmark", "Copenhagen", "Europe", "Aarhus"),
    C("Ireland", "Dublin", "Europe", "Cork"),
    C("Hungary", "Budapest", "Europe", "Debrecen"),
    C("the Czech Republic", "Prague", "Europe", "Brno"),
    C("the United Kingdom", "London", "Europe", "Manchester"),
    C("Ukraine", "Kyiv", "Europe", "Lviv", ("Kiev",)),
    C("Turkey", "Ankara", "Asia", "Istanbul", (), ("Europe",)),
    C("Japan", "Tokyo", "Asia", "Osaka"),
    C("China", "Beijing", "Asia", "Shanghai"),
    C("India", "New Delhi", "Asia", "Mumbai", ("Delhi",)),
    C("South Korea", "Seoul", "Asia", "Busan"),
    C("Vietnam", "Hanoi", "Asia", "Ho Chi Minh City"),
    C("Thailand", "Bangkok", "Asia", "Chiang Mai"),
    C("Pakistan", "Islamabad", "Asia", "Karachi"),
    C("the Philippines", "Manila", "Asia", "Cebu"),
    C("Saudi Arabia", "Riyadh", "Asia", "Jeddah"),
    C("Egypt", "Cairo", "Africa", "Alexandria"),
    C("Nigeria", "Abuja", "Africa", "Lagos"),
    C("Kenya", "Nairobi", "Africa", "Mombasa"),
    C("Morocco", "Rabat", "Africa", "Casablanca"),
    C("Ghana", "Accra", "Africa", "Kumasi"),
    C("Canada", "Ottawa", "North America", "Toronto"),
    C("the United States", "Washington, D.C.", "North America", "New York", ("Washington",)),
    C("Mexico", "Mexico City", "North America", "Guadalajara"),
    C("Cuba", "Havana", "North America", "Santiago de Cuba"),
    C("Brazil", "Brasilia", "South America", "Rio de Janeiro", ("Brasília",)),
    C("Argentina", "Buenos Aires", "South America", "Cordoba", (), ()),
    C("Peru", "Lima", "South America", "Cusco"),
    C("Chile", "Santiago", "South America", "Valparaiso"),
    C("Colombia", "Bogota", "South America", "Medellin", ("Bogotá",)),
    C("Australia", "Canberra", "Oceania", "Sydney", (), ("Australia",)),
    C("New Zealand", "Wellington", "Oceania", "Auckland"),
)

PLANETS: tuple[Planet, ...] = (
    Planet("Mercury", 1, "rocky planet"),
    Planet("Venus", 2, "rocky planet"),
    Planet("Earth", 3, "rocky planet"),
    Planet("Mars", 4, "rocky planet"),
    Planet("Jupiter", 5, "gas giant"),
    Planet("Saturn", 6, "gas giant"),
    Planet("Uranus", 7, "ice giant"),
    Planet("Neptune", 8, "ice giant"),
)

E = Element
ELEMENTS: tuple[Element, ...] = (
    E("hydrogen", "H", 1),
    E("helium", "He", 2),
    E("lithium", "Li", 3),
    E("beryllium", "Be", 4),
    E("boron", "B", 5),
    E("carbon", "C", 6),
    E("nitrogen", "N", 7),
    E("oxygen", "O", 8),
    E("fluorine", "F", 9),
    E("neon", "Ne", 10),
    E("sodium", "Na", 11),
    E("magnesium", "Mg", 12),
    E("aluminium", "Al", 13, ("aluminum",)),
    E("silicon", "Si", 14),
    E("phosphorus", "P", 15),
    E("sulfur", "S", 16, ("sulphur",)),
    E("chlorine", "Cl", 17),
    E("argon", "Ar", 18),
    E("potassium", "K", 19),
    E("calcium", "Ca", 20),
    E("titanium", "Ti", 22),
    E("chromium", "Cr", 24),
    E("manganese", "Mn", 25),
    E("iron", "Fe", 26),
    E("cobalt", "Co", 27),
    E("nickel", "Ni", 28),
    E("copper", "Cu", 29),
    E("zinc", "Zn", 30),
    E("silver", "Ag", 47),
    E("tin", "Sn", 50),
    E("iodine", "I", 53),
    E("platinum", "Pt", 78),
    E("gold", "Au", 79),
    E("mercury", "Hg", 80),
    E("lead", "Pb", 82),
    E("uranium", "U", 92),
)

A = Animal
ANIMALS: tuple[Animal, ...] = (
    A("dog", "dogs", "mammal", 4, False),
    A("cat", "cats", "mammal", 4, False),
    A("horse", "horses", "mammal", 4, False),
    A("cow", "cows", "mammal", 4, False),
    A("elephant", "elephants", "mammal", 4, False),
    A("lion", "lions", "mammal", 4, False),
    A("tiger", "tigers", "mammal", 4, False),
    A("giraffe", "giraffes", "mammal", 4, False),
    A("zebra", "zebras", "mammal", 4, False),
    A("bear", "bears", "mammal", 4, False),
    A("wolf", "wolves", "mammal", 4, False),
    A("rabbit", "rabbits", "mammal", 4, False),
    A("eagle", "eagles", "bird", 2, True),
    A("owl", "owls", "bird", 2, True),
    A("penguin", "penguins", "bird", 2, True),
    A("ostrich", "ostriches", "bird", 2, True),
    A("parrot", "parrots", "bird", 2, True),
    A("chicken", "chickens", "bird", 2, True),
    A("duck", "ducks", "bird", 2, True),
    A("frog", "frogs", "amphibian", 4, True),
    A("crocodile", "crocodiles", "reptile", 4, True),
    A("turtle", "turtles", "reptile", 4, True),
    A("lizard", "lizards", "reptile", 4, True),
    A("spider", "spiders", "arachnid", 8, True),
    A("ant", "ants", "insect", 6, True),
    A("bee", "bees", "insect", 6, True),
    A("butterfly", "butterflies", "insect", 6, True),
    A("beetle", "beetles", "insect", 6, True),
)

I = Invention
INVENTIONS: tuple[Invention, ...] = (
    I("telephone", "Alexander Graham Bell", 1876),
    I("phonograph", "Thomas Edison", 1877),
    I("airplane", "the Wright brothers", 1903),
    I("dynamite", "Alfred Nobel", 1867, article=""),
    I("World Wide Web", "Tim Berners-Lee", 1989),
    I("Braille writing system", "Louis Braille", 1824, ("1829",)),
    I("Benz Patent-Motorwagen car", "Karl Benz", 1886, ("1885",)),
    I("periodic table", "Dmitri Mendeleev", 1869),
    I("lightning rod", "Benjamin Franklin", 1752),
    I("cotton gin", "Eli Whitney", 1793),
    I("ballpoint pen", "Laszlo Biro", 1938),
    I("electric battery", "Alessandro Volta", 1800, ("1799",)),
    I("smallpox vaccine", "Edward Jenner", 1796),
    I("stethoscope", "Rene Laennec", 1816),
    I("mercury barometer", "Evangelista Torricelli", 1643, ("1644",)),
    I("mercury thermometer", "Daniel Fahrenheit", 1714),
    I("safety pin", "Walter Hunt", 1849),
    I("Rubik's Cube", "Erno Rubik", 1974),
    I("dishwasher", "Josephine Cochrane", 1886),
    I("Morse code", "Samuel Morse", 1838, ("1837",), article=""),
)


def split_of(index: int) -> str:
    """The fixed split of the index-th entity of a table."""
    return "eval" if index % EVAL_EVERY == EVAL_OFFSET else "train"


def entities(table: tuple, split: str) -> list:
    """The entities of ``table`` that belong to ``split``, in table order."""
    return [x for i, x in enumerate(table) if split_of(i) == split]


def people_alive_in(year: int) -> list[Person]:
    return [p for p in PEOPLE if p.born <= year <= p.died]
