"""The profiles of `bench/quality.py`, written before measuring: keywords a researcher of each
field might type, topics absent from a physics and computer-science corpus, and the arXiv
categories whose papers count as on-topic for those.
"""

from __future__ import annotations

# Keyword profiles: one per category; a paper is relevant when it carries the category.
KEYWORDS: dict[str, list[str]] = {
    "quant-ph": [
        "quantum error correction",
        "entanglement",
        "qubit",
        "quantum circuits",
        "variational quantum algorithms",
    ],
    "cs.AI": ["LLM agents", "reasoning", "planning", "multi-agent systems", "knowledge graphs", "agentic AI"],
    "cs.CV": [
        "image segmentation",
        "object detection",
        "vision transformer",
        "3D reconstruction",
        "video understanding",
    ],
    "cs.CL": [
        "language models",
        "machine translation",
        "question answering",
        "multilingual",
        "natural language processing",
    ],
    "cs.LG": [
        "deep learning",
        "neural networks",
        "reinforcement learning",
        "generalization",
        "representation learning",
    ],
    "cs.IT": ["channel capacity", "coding theory", "information theory", "MIMO", "wireless communication"],
    "cs.RO": ["robot manipulation", "motion planning", "autonomous navigation", "legged robots", "SLAM", "grasping"],
    "cs.GR": ["rendering", "mesh", "Gaussian splatting", "character animation", "geometry processing"],
    "astro-ph.GA": ["galaxy evolution", "star formation", "interstellar medium", "Milky Way", "active galactic nuclei"],
    "astro-ph.CO": ["cosmological parameters", "dark energy", "cosmic microwave background", "large-scale structure"],
    "astro-ph.IM": ["telescope", "instrumentation", "detector calibration", "spectrograph", "data reduction pipeline"],
    "astro-ph.HE": ["gamma-ray bursts", "X-ray binaries", "cosmic rays", "neutron stars", "pulsars"],
    "astro-ph.SR": ["stellar evolution", "solar flares", "asteroseismology", "binary stars", "stellar atmospheres"],
    "astro-ph.EP": ["exoplanets", "planet formation", "protoplanetary disks", "exoplanet atmospheres", "asteroids"],
    "hep-th": ["string theory", "holography", "AdS/CFT", "conformal field theory", "supersymmetry"],
    "hep-ph": ["Standard Model", "Higgs boson", "dark matter", "neutrino masses", "collider phenomenology", "QCD"],
    "gr-qc": ["gravitational waves", "black holes", "general relativity", "modified gravity", "spacetime"],
    "cond-mat.stat-mech": ["statistical mechanics", "phase transitions", "non-equilibrium", "entropy production"],
    "cs.HC": ["user study", "human-computer interaction", "usability", "visualization", "accessibility"],
    "math-ph": [
        "mathematical physics",
        "integrable systems",
        "spectral theory",
        "operator algebras",
        "random matrices",
    ],
    "physics.optics": ["photonics", "metasurfaces", "optical fibers", "lasers", "nonlinear optics"],
    "cond-mat.mes-hall": ["quantum dots", "topological insulators", "graphene", "spintronics", "quantum Hall effect"],
    "cond-mat.str-el": ["strongly correlated electrons", "Hubbard model", "quantum spin liquids", "Mott insulators"],
    "cs.MA": ["multi-agent systems", "multi-agent reinforcement learning", "agent coordination", "swarm"],
    "cond-mat.quant-gas": ["Bose-Einstein condensates", "ultracold atoms", "optical lattices", "Rydberg atoms"],
    "cs.CY": ["AI ethics", "fairness", "social impact", "education", "misinformation", "policy"],
    "cs.CR": ["security", "privacy", "adversarial attacks", "jailbreak", "cryptography", "malware"],
    "cs.IR": ["recommender systems", "information retrieval", "retrieval-augmented generation", "search engines"],
    "hep-ex": ["LHC", "ATLAS", "CMS", "particle detectors", "cross section measurement"],
    "cs.GT": ["game theory", "mechanism design", "auctions", "Nash equilibrium", "social choice"],
}

# Narrow profiles: categories with only a handful of papers in a window (1 to 4); a paper is
# relevant when it carries the category. Measured: the precision of what is sent.
NARROW: dict[str, list[str]] = {
    "nucl-th": ["nuclear structure", "nuclear matter", "heavy-ion collisions", "nucleon"],
    "cs.DS": ["approximation algorithms", "graph algorithms", "data structures", "streaming algorithms"],
    "cs.LO": ["formal verification", "type theory", "temporal logic", "model checking"],
    "cs.CC": ["computational complexity", "lower bounds", "NP-hardness", "circuit complexity"],
    "cs.NI": ["network protocols", "edge computing", "network traffic", "routing"],
    "cond-mat.supr-con": ["superconductivity", "superconductors", "Cooper pairs", "pairing symmetry"],
    "physics.ins-det": ["particle detectors", "scintillators", "photomultipliers", "detector readout"],
    "cs.SE": ["software engineering", "code generation", "program repair", "software testing"],
    "cs.DC": ["distributed systems", "GPU clusters", "parallel computing", "federated learning"],
    "eess.SP": ["signal processing", "radar", "beamforming", "channel estimation"],
    "physics.soc-ph": ["social networks", "opinion dynamics", "epidemic spreading", "complex networks"],
    "cs.SD": ["speech synthesis", "audio generation", "music generation", "speech recognition"],
    "cs.NE": ["evolutionary algorithms", "spiking neural networks", "genetic programming", "neuroevolution"],
    "cs.DB": ["query optimization", "database systems", "text-to-SQL", "data management"],
    "physics.chem-ph": ["molecular dynamics", "density functional theory", "chemical reactions", "spectroscopy"],
}

# Absent topics: keyword profiles for fields the corpus barely has. Every paper sent to them
# outside `home` is off-topic.
ABSENT_KEYWORDS: dict[str, tuple[list[str], tuple[str, ...]]] = {
    "marine biology": (["coral reefs", "marine ecology", "fisheries", "biodiversity"], ("q-bio", "physics.bio-ph")),
    "economics": (["monetary policy", "inflation", "labor market", "central bank"], ("econ", "q-fin")),
    "law": (["contract law", "constitutional court", "criminal justice", "legal precedent"], ("cs.CY",)),
    "music": (["music theory", "orchestra", "jazz improvisation", "songwriting"], ("cs.SD", "eess.AS")),
    "medicine": (["clinical trials", "cardiology", "oncology", "patient outcomes"], ("q-bio", "physics.med-ph")),
    "agriculture": (["crop yield", "soil fertility", "irrigation", "livestock"], ("q-bio", "physics.ao-ph")),
    "history": (["medieval history", "archaeology", "ancient Rome", "Renaissance art"], ("physics.hist-ph",)),
    "geology": (["plate tectonics", "volcanic eruptions", "sedimentary rocks", "seismology"], ("physics.geo-ph",)),
    "chemistry": (["organic synthesis", "catalysis", "polymer chemistry", "electrochemistry"], ("physics.chem-ph",)),
    "sports": (["football", "tennis", "Olympic athletes", "marathon running"], ("physics.soc-ph",)),
    "cooking": (["recipes", "wine fermentation", "culinary arts", "baking"], ()),
    "linguistic typology": (["phonology", "morphosyntax", "language typology", "historical linguistics"], ()),
}

# Absent topics as seed papers: categories with at most 2 papers in a window, seeds from older
# papers; a paper sent is off-topic unless it shares the seeds' archive.
ABSENT_SEED_CATEGORIES = (
    "math.AG", "math.NT", "math.CO", "math.PR", "math.AP", "math.DG", "math.GT", "math.RT",
    "cs.DM", "cs.PL", "nucl-th", "cond-mat.supr-con", "cs.CC", "cs.LO",
)  # fmt: skip
