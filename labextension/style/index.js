import './base.css';
import './tune.css';
