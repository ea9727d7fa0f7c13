"""Prompts with known topics for the clustering tests: three topics of 15 prompts each, a small
fourth group (5 prompts that share a rare word), and unrelated one-off prompts."""

COOKING = [
    "How long should I bake a chicken breast in the oven?",
    "What is a good recipe for vegetarian lasagna?",
    "How do I make fluffy pancakes from scratch?",
    "Can I substitute butter with olive oil when baking a cake?",
    "What spices go well in a beef stew recipe?",
    "How do I cook rice so it is not sticky?",
    "Give me a quick pasta recipe with garlic and tomatoes.",
    "How do I know when a steak is cooked medium rare?",
    "What is the best way to roast vegetables in the oven?",
    "How can I make my homemade bread rise more?",
    "Suggest a dinner recipe using chicken and potatoes.",
    "How much salt should I put in soup for four people?",
    "What can I cook for dinner with eggs, cheese and spinach?",
    "How do I make a creamy mushroom sauce for pasta?",
    "Is it safe to eat cookie dough with raw eggs in baking?",
]
PYTHON = [
    "How do I read a CSV file in Python with pandas?",
    "Why does my Python code raise a KeyError on this dictionary?",
    "How can I sort a list of dictionaries by a key in Python?",
    "Write a Python function that reverses a string.",
    "What is the difference between a list and a tuple in Python?",
    "How do I install a Python package with pip in a virtualenv?",
    "Explain Python decorators with a simple code example.",
    "How do I fix an IndentationError in my Python script?",
    "How can I read a JSON file into a Python dictionary?",
    "What does the yield keyword do in a Python function?",
    "How do I write unit tests for my Python code with pytest?",
    "Convert this Python for loop into a list comprehension.",
    "How do I handle exceptions with try and except in Python?",
    "Why is my Python script so slow when looping over a big list?",
    "How do I split a string by commas in Python code?",
]
TRAVEL = [
    "What are the best things to see in Rome on a three day trip?",
    "Which documents do I need to travel to Japan as a tourist?",
    "Plan a one week travel itinerary for Portugal.",
    "What is the cheapest way to travel around Europe by train?",
    "Is it better to book flights and hotels early for a summer trip?",
    "What should I pack for a beach holiday in Thailand?",
    "Recommend places to visit in Paris for a weekend trip.",
    "How do I avoid jet lag on a long flight to Australia?",
    "What are good hiking destinations to travel to in Switzerland?",
    "Which neighborhoods are best to stay in when visiting New York?",
    "How much money should I budget per day for travel in Vietnam?",
    "What is the best time of year to visit Iceland for a trip?",
    "Do I need a visa to travel from the UK to Canada?",
    "Suggest a road trip route along the California coast.",
    "What are the must see sights on a trip to Barcelona?",
]
# A small group with a rare shared word: too few to be a shown topic at min size 10.
SMALL = [
    "My zorblat quilt pattern needs a border, any ideas for the zorblat edge?",
    "How do I wash a zorblat quilt without the colors running?",
    "Which fabric suits a zorblat quilt for a baby?",
    "Can you explain the zorblat quilt stitch step by step?",
    "What size batting should a zorblat quilt use?",
]
NOISE = [
    "What is the capital of Mongolia?",
    "Tell me a joke about penguins.",
    "How many moons does Jupiter have?",
    "Translate good morning into German.",
    "Who wrote the novel Middlemarch?",
]
TOPICS = {"cooking": COOKING, "python": PYTHON, "travel": TRAVEL}
