"""Taking nodes from racked to provisioned: stages, their engine, and the bridges they drive."""
